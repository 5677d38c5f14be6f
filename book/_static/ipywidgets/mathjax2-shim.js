// The ipywidgets 8 HTML manager (embed.js) typesets widget labels through
// MathJax 2's API, MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]). The
// book loads MathJax 3, which has no Hub, so every label threw a TypeError on
// pages with both math and widgets. MathJax 3 is loaded with `defer` (it runs
// before DOMContentLoaded) and the widgets render on `load`, so a Hub added in
// between is in place when the widgets need it.
document.addEventListener("DOMContentLoaded", function () {
  if (window.MathJax && !window.MathJax.Hub) {
    window.MathJax.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        if (element && typeof window.MathJax.typesetPromise === "function") {
          window.MathJax.typesetPromise([element]);
        }
      },
    };
  }
});
