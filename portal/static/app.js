// mailgate portal: copy button and code expiry countdown. Everything else
// works without JavaScript.
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    if (!navigator.clipboard) { return; }
    btn.hidden = false;
    var label = btn.textContent;
    btn.addEventListener("click", function () {
      navigator.clipboard.writeText(btn.dataset.copy).then(function () {
        btn.textContent = "✓";
        setTimeout(function () { btn.textContent = label; }, 1500);
      });
    });
  });
  document.querySelectorAll(".countdown[data-expires]").forEach(function (el) {
    var end = Date.parse(el.dataset.expires);
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      if (left === 0) { el.textContent = "(" + el.dataset.expired + ")"; el.classList.add("over"); return; }
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = "(" + m + ":" + (s < 10 ? "0" : "") + s + ")";
      setTimeout(tick, 1000);
    }
    tick();
  });
})();
