// The attachments panel of the task page (macros/attachments.html), driven by htmx. The server
// answers an upload or a removal with the panel itself, refusals included (400, 409): swap it
// in whatever the status. Any other answer (a body over the size limit, a server error, a login
// page after the session expired) leaves the panel as it was and says so in its message line.
(function () {
  function panelOf(elt) {
    return elt && elt.closest ? elt.closest('[data-attachments-panel]') : null;
  }

  function say(panel, text) {
    var line = panel.querySelector('[data-attachments-message]');
    if (line) {
      line.textContent = text;
      line.hidden = false;
    }
  }

  document.addEventListener('htmx:beforeSwap', function (event) {
    var panel = panelOf(event.detail.elt);
    if (!panel) { return; }
    var xhr = event.detail.xhr;
    if (xhr.getResponseHeader('X-Attachments-Panel')) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      return;
    }
    event.detail.shouldSwap = false;
    say(panel, xhr.status === 413 ? panel.getAttribute('data-too-large')
      : 'That did not work (answer ' + xhr.status + '). Reload the page and try again.');
  });

  document.addEventListener('htmx:sendError', function (event) {
    var panel = panelOf(event.detail.elt);
    if (panel) { say(panel, 'The files could not be sent. Check the connection and try again.'); }
  });
})();
