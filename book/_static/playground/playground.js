/* LPIPS in the browser: the book's playground (book/playground.md).
 *
 * onnxruntime-web (WebAssembly) runs the fp32 ONNX graphs exported by
 * lpips_core.model.export.export_browser_models: inputs in0, in1 (1, 3, H, W)
 * in [-1, 1]; outputs distance (1, 1, 1, 1) and map (1, 1, H, W).
 * Everything is loaded from this script's own folder (ort/, models/,
 * examples/, copied there at build time by book/playground_assets.py):
 * no CDN, works offline.
 *
 * Scripting interface (tests, readers' own pages):
 *   await window.lpipsPlayground.ready;
 *   const r = await window.lpipsPlayground.compare(a, b, {net: "alex"});
 *   // a, b: image URL, HTMLImageElement or File/Blob
 *   // r: {distance, map (Float32Array, row-major), width, height, net}
 * Input rules are the package's: equal sizes (or {resize: true}: the second
 * image is resized to the first's size by the browser's bilinear filter, which
 * is not Pillow's), at least the trunk's minimum side, at most max_side per
 * side (models.json), opaque RGB; pixels are decoded without colour
 * management (colorSpaceConversion: "none"), so they equal Pillow's.
 */
(function () {
  "use strict";
  const script = document.currentScript;
  const base = new URL(".", script ? script.src : location.href);
  const sessions = {};
  let manifest = null;

  class PlaygroundError extends Error {}

  function threads() {
    // SharedArrayBuffer (threads) needs cross-origin isolation (COOP/COEP headers).
    if (!self.crossOriginIsolated) return 1;
    return Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
  }

  function loadScript(url) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = url;
      s.onload = resolve;
      s.onerror = () => reject(new PlaygroundError(`could not load ${url}`));
      document.head.appendChild(s);
    });
  }

  async function init() {
    if (location.protocol === "file:") {
      throw new PlaygroundError(
        "This page was opened from file://, where browsers block the model files and " +
        "WebAssembly. Serve the folder over HTTP instead, e.g. " +
        "`python -m http.server -d _build/html 8000`, then open " +
        "http://localhost:8000/book/playground.html");
    }
    const res = await fetch(new URL("models/models.json", base));
    if (!res.ok) {
      throw new PlaygroundError(
        "The playground's models are not in this build (models/models.json is missing): " +
        "build the book with `make book`, which exports them.");
    }
    manifest = await res.json();
    if (!Object.keys(manifest.nets).length) {
      throw new PlaygroundError("No trunk was exported for this build: " + JSON.stringify(manifest.missing));
    }
    await loadScript(new URL("ort/ort.wasm.min.js", base).href);
    ort.env.wasm.wasmPaths = new URL("ort/", base).href;
    ort.env.wasm.numThreads = threads();
    ort.env.wasm.proxy = false;
    return {nets: Object.keys(manifest.nets), maxSide: manifest.max_side, threads: threads(),
            missing: manifest.missing};
  }

  async function session(net) {
    if (!manifest.nets[net]) {
      const known = Object.keys(manifest.nets).join(", ");
      throw new PlaygroundError(`net "${net}" is not available here (choose one of: ${known})`);
    }
    if (!sessions[net]) {
      const url = new URL(`models/${manifest.nets[net].file}`, base).href;
      sessions[net] = ort.InferenceSession.create(url, {executionProviders: ["wasm"],
                                                        graphOptimizationLevel: "all"});
      sessions[net].catch(() => { delete sessions[net]; });  // a failed load is retried next time
    }
    return sessions[net];
  }

  async function toBlob(src, label) {
    if (src instanceof Blob) return src;
    const url = src instanceof HTMLImageElement ? (src.currentSrc || src.src) : String(src);
    const res = await fetch(url);
    if (!res.ok) throw new PlaygroundError(`image ${label}: ${url} answered HTTP ${res.status}`);
    return res.blob();
  }

  // Raw RGBA pixels: no colour-space conversion (as Pillow), no premultiplication.
  async function decode(src, label) {
    const blob = await toBlob(src, label);
    let bitmap;
    try {
      bitmap = await createImageBitmap(blob, {colorSpaceConversion: "none", premultiplyAlpha: "none"});
    } catch (e) {
      const name = src instanceof File ? src.name : "the file";
      throw new PlaygroundError(`image ${label}: ${name} is not an image this browser can decode`);
    }
    return bitmap;
  }

  function pixels(bitmap, width, height, label) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", {willReadFrequently: true, colorSpace: "srgb"});
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "low";  // bilinear where resizing
    ctx.drawImage(bitmap, 0, 0, width, height);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const n = width * height;
    const chw = new Float32Array(3 * n);  // (3, H, W) in [-1, 1]: v / 127.5 - 1, as im2tensor
    for (let i = 0; i < n; i++) {
      if (rgba[4 * i + 3] !== 255) {
        throw new PlaygroundError(
          `image ${label} has transparent pixels: the package drops alpha, a browser ` +
          "canvas cannot; save it without transparency (e.g. as JPEG) first");
      }
      chw[i] = rgba[4 * i] / 127.5 - 1;
      chw[n + i] = rgba[4 * i + 1] / 127.5 - 1;
      chw[2 * n + i] = rgba[4 * i + 2] / 127.5 - 1;
    }
    return chw;
  }

  function checkSize(w, h, label, net) {
    const low = manifest.nets[net].min_side, high = manifest.max_side;
    if (Math.min(w, h) < low) {
      throw new PlaygroundError(
        `image ${label} is ${w}x${h}: the ${net} trunk needs at least ${low} pixels per side`);
    }
    if (Math.max(w, h) > high) {
      throw new PlaygroundError(
        `image ${label} is ${w}x${h}: at most ${high} pixels per side here (memory); downscale it first`);
    }
  }

  async function compare(a, b, options = {}) {
    await api.ready;
    const net = options.net || "alex";
    const sess = await session(net);
    const [ia, ib] = await Promise.all([decode(a, "A"), decode(b, "B")]);
    const w = ia.width, h = ia.height;
    if ((ib.width !== w || ib.height !== h) && !options.resize) {
      throw new PlaygroundError(
        `image A is ${w}x${h} but image B is ${ib.width}x${ib.height}: LPIPS compares images ` +
        "of the same size (or resize B to A's size: {resize: true}, the page's checkbox)");
    }
    checkSize(w, h, "A", net);
    const in0 = new ort.Tensor("float32", pixels(ia, w, h, "A"), [1, 3, h, w]);
    const in1 = new ort.Tensor("float32", pixels(ib, w, h, "B"), [1, 3, h, w]);
    const out = await sess.run({in0, in1});
    return {distance: out.distance.data[0], map: out.map.data, width: w, height: h, net};
  }

  // ------------------------------------------------------------------ the page's controls
  function viridis(t) {  // 5-stop approximation of matplotlib's viridis, t in [0, 1]
    const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
    return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
  }

  function drawResult(root, r, imageA) {
    const canvas = root.querySelector(".lp-overlay");
    canvas.width = r.width;
    canvas.height = r.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(imageA, 0, 0, r.width, r.height);
    const base = ctx.getImageData(0, 0, r.width, r.height);
    let lo = Infinity, hi = -Infinity;
    for (const v of r.map) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const alpha = Number(root.querySelector(".lp-alpha").value);
    for (let i = 0; i < r.map.length; i++) {
      const c = viridis((r.map[i] - lo) / (hi - lo || 1));
      for (let k = 0; k < 3; k++) base.data[4 * i + k] = (1 - alpha) * base.data[4 * i + k] + alpha * c[k];
    }
    ctx.putImageData(base, 0, 0);
    const bar = root.querySelector(".lp-colorbar");
    const bctx = bar.getContext("2d");
    for (let x = 0; x < bar.width; x++) {
      const c = viridis(x / (bar.width - 1));
      bctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
      bctx.fillRect(x, 0, 1, bar.height);
    }
    root.querySelector(".lp-bar-lo").textContent = lo.toFixed(4);
    root.querySelector(".lp-bar-hi").textContent = hi.toFixed(4);
  }

  function setupPage(root, info) {
    const [fileA, fileB] = root.querySelectorAll(".lp-file");
    const netSelect = root.querySelector(".lp-net");
    const status = root.querySelector(".lp-status");
    const chosen = {A: null, B: null};
    for (const net of info.nets) netSelect.add(new Option(net, net));
    for (const [net, why] of Object.entries(info.missing || {})) {
      netSelect.add(new Option(`${net} (not in this build)`, net, false, false));
      netSelect.options[netSelect.options.length - 1].disabled = true;
      netSelect.title = why;
    }
    root.querySelector(".lp-limits").textContent =
      `Limits: at most ${info.maxSide} pixels per side; at least ` +
      info.nets.map(n => `${manifest.nets[n].min_side} (${n})`).join(", ") +
      `. Threads: ${info.threads}` + (info.threads === 1 ? " (page not cross-origin isolated)" : "") + ".";

    async function run() {
      if (!chosen.A || !chosen.B) { status.textContent = "Choose or drop two images."; return; }
      status.textContent = "Computing...";
      const t0 = performance.now();
      try {
        const r = await compare(chosen.A, chosen.B, {net: netSelect.value,
                                                     resize: root.querySelector(".lp-resize").checked});
        const ms = performance.now() - t0;
        const bitmap = await decode(chosen.A, "A");
        drawResult(root, r, bitmap);
        root.querySelector(".lp-distance").textContent = r.distance.toFixed(4);
        status.textContent = `LPIPS-${r.net} v${manifest.version}, ${r.width}x${r.height}, ${ms.toFixed(0)} ms.`;
      } catch (e) {
        root.querySelector(".lp-distance").textContent = "-";
        status.textContent = "Error: " + e.message;
      }
    }
    function preview(slot, src, label) {
      const img = document.createElement("img");
      img.src = src instanceof Blob ? URL.createObjectURL(src) : src;
      img.alt = label;
      root.querySelector(`.lp-preview-${slot}`).replaceChildren(img);
    }
    function pick(slot, src, label) {
      chosen[slot] = src;
      preview(slot, src, label);
      run();
    }
    fileA.addEventListener("change", () => fileA.files[0] && pick("A", fileA.files[0], fileA.files[0].name));
    fileB.addEventListener("change", () => fileB.files[0] && pick("B", fileB.files[0], fileB.files[0].name));
    for (const slot of ["A", "B"]) {
      const zone = root.querySelector(`.lp-drop-${slot}`);
      zone.addEventListener("dragover", e => e.preventDefault());
      zone.addEventListener("drop", e => {
        e.preventDefault();
        const f = e.dataTransfer.files[0];
        if (f) pick(slot, f, f.name);
      });
    }
    netSelect.addEventListener("change", run);
    root.querySelector(".lp-resize").addEventListener("change", run);
    root.querySelector(".lp-alpha").addEventListener("input", run);
    fetch(new URL("examples/examples.json", base)).then(r => r.json()).then(pairs => {
      const box = root.querySelector(".lp-examples");
      for (const p of pairs) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.className = "lp-example";
        btn.textContent = p.name;
        btn.addEventListener("click", () => {
          chosen.A = new URL(`examples/${p.a}`, base).href;
          preview("A", chosen.A, p.a);
          pick("B", new URL(`examples/${p.b}`, base).href, p.b);
        });
        box.appendChild(btn);
      }
    });
  }

  const api = {version: "1", compare, PlaygroundError};
  api.ready = init();
  api.ready.catch(() => {});  // reported by the page (or the caller's await), not as "uncaught"
  window.lpipsPlayground = api;

  function onLoad() {
    const root = document.getElementById("lpips-playground");
    if (!root) return;
    const status = root.querySelector(".lp-status");
    api.ready.then(info => {
      setupPage(root, info);
      status.textContent = "Ready: pick two images or click an example pair.";
    }, e => { status.textContent = "Error: " + e.message; root.classList.add("lp-failed"); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onLoad);
  else onLoad();
})();
