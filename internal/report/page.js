(function () {
  "use strict";
  // Filters hide alerts and their timeline marks; nothing here builds
  // markup from the page's text.
  var sel = {
    signature: document.getElementById("f-signature"),
    host: document.getElementById("f-host"),
    user: document.getElementById("f-user"),
    importance: document.getElementById("f-importance")
  };
  var alerts = document.querySelectorAll("article.alert");
  var marks = document.querySelectorAll("a.mark");
  var count = document.getElementById("alert-count");
  function apply() {
    var shown = 0, visible = {};
    for (var i = 0; i < alerts.length; i++) {
      var a = alerts[i], ok = true;
      for (var k in sel) {
        if (sel[k].value !== "" && a.dataset[k] !== sel[k].value) {
          ok = false;
        }
      }
      a.hidden = !ok;
      if (ok) {
        shown++;
        visible[a.id] = true;
      }
    }
    for (var j = 0; j < marks.length; j++) {
      marks[j].hidden = !visible["alert-" + marks[j].dataset.n];
    }
    count.textContent = String(shown);
  }
  // A link may preselect filters: report.html?host=web1&signature=...
  // A value no option has selects nothing.
  var params = new URLSearchParams(window.location.search);
  for (var k in sel) {
    if (params.has(k)) {
      sel[k].value = params.get(k);
    }
    sel[k].addEventListener("change", apply);
  }
  document.getElementById("f-reset").addEventListener("click", function () {
    for (var k in sel) {
      sel[k].value = "";
    }
    apply();
  });
  apply();
  // Says the script ran (allowed by the page's policy).
  document.documentElement.dataset.filters = "ready";
})();
