// The case page's diagram: bpmn-js navigated viewer with completed and current steps marked.
(function () {
  var holder = document.getElementById('diagram');
  var source = document.getElementById('diagram-data');
  if (!holder || !source || typeof BpmnJS === 'undefined') { return; }
  var diagram = JSON.parse(source.textContent);
  var viewer = new BpmnJS({ container: holder });

  // Show the whole diagram with a free band at the bottom for the bpmn.io watermark, which
  // must stay visible and must not hide a step.
  function fit(canvas) {
    canvas.zoom('fit-viewport');
    var inner = canvas.viewbox().inner;
    var size = canvas.getSize();
    var pad = 20, band = 70;   // screen pixels
    var scale = Math.min((size.width - 2 * pad) / inner.width, (size.height - 2 * pad - band) / inner.height);
    canvas.viewbox({
      x: inner.x - pad / scale,
      y: inner.y - pad / scale,
      width: size.width / scale,
      height: size.height / scale
    });
  }

  viewer.importXML(diagram.xml).then(function () {
    var canvas = viewer.get('canvas');
    var registry = viewer.get('elementRegistry');
    fit(canvas);
    diagram.completed.forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, 'step-done'); } });
    diagram.current.forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, 'step-current'); } });
    document.querySelectorAll('[data-diagram-zoom]').forEach(function (button) {
      button.addEventListener('click', function () {
        var how = button.getAttribute('data-diagram-zoom');
        if (how === 'fit') { fit(canvas); return; }
        canvas.zoom(canvas.zoom() * (how === 'in' ? 1.25 : 0.8));
      });
    });
    holder.setAttribute('data-rendered', 'true');
  }).catch(function (err) {
    holder.textContent = 'The diagram could not be shown: ' + err.message;
    holder.setAttribute('data-rendered', 'error');
  });
})();
