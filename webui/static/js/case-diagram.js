// The case page's diagram: bpmn-js navigated viewer with completed and current steps marked.
(function () {
  var holder = document.getElementById('diagram');
  var source = document.getElementById('diagram-data');
  if (!holder || !source || typeof BpmnJS === 'undefined') { return; }
  var diagram = JSON.parse(source.textContent);
  var viewer = new BpmnJS({ container: holder });
  viewer.importXML(diagram.xml).then(function () {
    var canvas = viewer.get('canvas');
    var registry = viewer.get('elementRegistry');
    canvas.zoom('fit-viewport');
    diagram.completed.forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, 'step-done'); } });
    diagram.current.forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, 'step-current'); } });
    holder.setAttribute('data-rendered', 'true');
  }).catch(function (err) {
    holder.textContent = 'The diagram could not be shown: ' + err.message;
    holder.setAttribute('data-rendered', 'error');
  });
})();
