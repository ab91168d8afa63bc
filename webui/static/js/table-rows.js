// Editable tables for arrays of objects: add and remove rows, keeping field names numbered
// (name-0-col, name-1-col, ...) so the server reads them back in order.
(function () {
  function renumber(table) {
    var name = table.getAttribute('data-table');
    var rows = table.querySelectorAll('tbody tr.row');
    rows.forEach(function (row, i) {
      row.querySelectorAll('[name]').forEach(function (el) {
        var rest = el.name.slice(name.length + 1).replace(/^\d+-/, '');
        el.name = name + '-' + i + '-' + rest;
      });
    });
  }
  document.querySelectorAll('.table-field').forEach(function (table) {
    var add = table.querySelector('.add-row');
    if (!add) { return; }   // a table with fixed rows
    add.addEventListener('click', function () {
      var body = table.querySelector('tbody');
      var last = body.querySelector('tr.row:last-child');
      var copy = last.cloneNode(true);
      copy.querySelectorAll('input, select, textarea').forEach(function (el) {
        if (el.type === 'checkbox') { el.checked = false; } else { el.value = ''; }
        el.removeAttribute('aria-invalid');
      });
      copy.querySelectorAll('.field-error').forEach(function (el) { el.remove(); });
      body.appendChild(copy);
      renumber(table);
    });
    table.addEventListener('click', function (event) {
      var button = event.target.closest('.remove-row');
      if (!button) { return; }
      var body = table.querySelector('tbody');
      if (body.querySelectorAll('tr.row').length > 1) {
        button.closest('tr').remove();
        renumber(table);
      }
    });
  });
})();
