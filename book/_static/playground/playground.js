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
 * management (colorSpaceConversion: "none"), so they equal Pillow's. Both
 * images' sizes are read from their headers and held to the pixel budget
 * (models.json max_pixels) before either is decoded.
 */
(function () {
  "use strict";
  const script = document.currentScript;
  const base = new URL(".", script ? script.src : location.href);
  const sessions = {};
  let manifest = null;

  class PlaygroundError extends Error {}

  // Largest file read to find its size (the bytes, not the decoded pixels).
  const MAX_FILE_BYTES = 64 * 1024 * 1024;

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

  // Width and height as the file's header declares them (PNG, JPEG, GIF, BMP, WebP), read
  // before any pixel is decoded; null when the header is not one of these or is cut short.
  function headerSize(buffer) {
    const u8 = new Uint8Array(buffer), dv = new DataView(buffer);
    const text = (a, b) => String.fromCharCode(...u8.subarray(a, b));
    if (u8.length >= 24 && text(1, 4) === "PNG" && text(12, 16) === "IHDR") {
      return {w: dv.getUint32(16), h: dv.getUint32(20)};
    }
    if (u8.length >= 10 && text(0, 3) === "GIF") return {w: dv.getUint16(6, true), h: dv.getUint16(8, true)};
    if (u8.length >= 26 && text(0, 2) === "BM") {
      return {w: Math.abs(dv.getInt32(18, true)), h: Math.abs(dv.getInt32(22, true))};
    }
    if (u8.length >= 30 && text(0, 4) === "RIFF" && text(8, 12) === "WEBP") {
      const kind = text(12, 16);
      if (kind === "VP8X") {
        return {w: 1 + (u8[24] | u8[25] << 8 | u8[26] << 16), h: 1 + (u8[27] | u8[28] << 8 | u8[29] << 16)};
      }
      if (kind === "VP8L") {
        const bits = dv.getUint32(21, true);
        return {w: 1 + (bits & 0x3fff), h: 1 + ((bits >>> 14) & 0x3fff)};
      }
      if (kind === "VP8 ") return {w: dv.getUint16(26, true) & 0x3fff, h: dv.getUint16(28, true) & 0x3fff};
      return null;
    }
    if (u8.length >= 4 && u8[0] === 0xff && u8[1] === 0xd8) {  // JPEG: walk the segments to the frame header
      let i = 2;
      while (i + 9 <= u8.length) {
        if (u8[i] !== 0xff) return null;
        const marker = u8[i + 1];
        if (marker === 0xff) { i += 1; continue; }  // fill byte
        if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) { i += 2; continue; }  // no length
        if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
          return {w: dv.getUint16(i + 7), h: dv.getUint16(i + 5)};
        }
        i += 2 + dv.getUint16(i + 2);
      }
    }
    return null;
  }

  // The pixel budget, checked from the header: a PNG of a few hundred KB can declare
  // 14000x14000 pixels, which the browser would decode into gigabytes before any other check.
  async function checkHeader(blob, label, name) {
    if (blob.size > MAX_FILE_BYTES) {
      throw new PlaygroundError(`image ${label}: ${name} is ${blob.size} bytes, more than this page reads ` +
                                `(${MAX_FILE_BYTES}); downscale or recompress it first`);
    }
    const size = headerSize(await blob.arrayBuffer());
    if (!size) {
      throw new PlaygroundError(`image ${label}: ${name} is not a PNG, JPEG, GIF, BMP or WebP file ` +
                                "whose size this page can read; convert it first");
    }
    const budget = manifest.max_pixels || manifest.max_side * manifest.max_side;
    if (size.w * size.h > budget) {
      throw new PlaygroundError(
        `image ${label}: ${name} declares ${size.w}x${size.h} = ${size.w * size.h} pixels, over this page's ` +
        `budget of ${budget} pixels (a decompression bomb, or a very large image); it was not decoded. ` +
        `Downscale it first (the budget is the book build's BROWSER_MAX_SIDE squared, in ` +
        "lpips_core/model/export.py)");
    }
    return size;
  }

  function nameOf(src) {
    if (src instanceof File) return src.name;
    if (src instanceof HTMLImageElement) return src.currentSrc || src.src;
    return src instanceof Blob ? "the file" : String(src);
  }

  // Raw RGBA pixels: no colour-space conversion (as Pillow), no premultiplication.
  async function decodeBlob(blob, label, name) {
    try {
      return await createImageBitmap(blob, {colorSpaceConversion: "none", premultiplyAlpha: "none"});
    } catch (e) {
      throw new PlaygroundError(`image ${label}: ${name} is not an image this browser can decode`);
    }
  }

  async function decode(src, label) {
    const blob = await toBlob(src, label), name = nameOf(src);
    await checkHeader(blob, label, name);
    return decodeBlob(blob, label, name);
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
    const blobs = await Promise.all([toBlob(a, "A"), toBlob(b, "B")]);
    await Promise.all([checkHeader(blobs[0], "A", nameOf(a)), checkHeader(blobs[1], "B", nameOf(b))]);
    const [ia, ib] = await Promise.all([decodeBlob(blobs[0], "A", nameOf(a)), decodeBlob(blobs[1], "B", nameOf(b))]);
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

  const api = {version: "1", compare, headerSize, PlaygroundError};
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
