// A small line chart on canvas for the dashboard: a few series over a time
// window, a zero-based y axis rounded up to a "nice" maximum, a legend with
// the latest values. No dependencies.

const PAD = { left: 58, right: 10, top: 22, bottom: 20 };

const GRID = 4; // horizontal grid lines above zero

// niceStep returns the smallest step of 1, 2, 2.5 or 5 times a power of ten
// such that GRID steps reach v.
export function niceStep(v) {
  if (!(v > 0)) return 1 / GRID;
  const raw = v / GRID;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (raw <= m * p * (1 + 1e-9)) return m * p;
  }
  return 10 * p;
}

function windowLabel(ms) {
  const s = Math.round(ms / 1000);
  return s >= 120 ? `-${Math.round(s / 60)} min` : `-${s} s`;
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

// drawChart draws series ([{label, color, values}], values aligned with
// times, Unix ms) over [end - windowMs, end]. format turns a y value into a
// label.
export function drawChart(canvas, { times, series, windowMs, end, format }) {
  const dpr = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 400;
  const cssHeight = Number(canvas.getAttribute('height')) || 160;
  if (canvas.width !== Math.round(cssWidth * dpr) || canvas.dataset.h !== String(cssHeight)) {
    canvas.width = Math.round(cssWidth * dpr);
    canvas.height = Math.round(cssHeight * dpr);
    canvas.style.height = `${cssHeight}px`;
    canvas.dataset.h = String(cssHeight);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);

  const text = cssVar('--muted', '#5c6577');
  const grid = cssVar('--line', '#dde1e8');
  const w = cssWidth - PAD.left - PAD.right;
  const h = cssHeight - PAD.top - PAD.bottom;
  const start = end - windowMs;
  let top = 0;
  for (const s of series) {
    for (let i = 0; i < s.values.length; i++) {
      if (times[i] >= start && s.values[i] > top) top = s.values[i];
    }
  }
  const step = niceStep(top);
  top = step * GRID;
  const x = (t) => PAD.left + ((t - start) / windowMs) * w;
  const y = (v) => PAD.top + h - (v / top) * h;

  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (let i = 0; i <= GRID; i++) {
    const v = step * i;
    const yy = Math.round(y(v)) + 0.5;
    ctx.strokeStyle = grid;
    ctx.beginPath();
    ctx.moveTo(PAD.left, yy);
    ctx.lineTo(PAD.left + w, yy);
    ctx.stroke();
    ctx.fillStyle = text;
    ctx.fillText(format(v), PAD.left - 6, yy);
  }
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillText(windowLabel(windowMs), PAD.left, PAD.top + h + 5);
  ctx.textAlign = 'right';
  ctx.fillText('now', PAD.left + w, PAD.top + h + 5);

  ctx.save();
  ctx.beginPath();
  ctx.rect(PAD.left, PAD.top - 1, w, h + 2);
  ctx.clip();
  ctx.lineWidth = 1.6;
  ctx.lineJoin = 'round';
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.beginPath();
    let started = false;
    for (let i = 0; i < s.values.length; i++) {
      if (times[i] < start - 2000) continue;
      const px = x(times[i]);
      const py = y(s.values[i]);
      if (started) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      started = true;
    }
    ctx.stroke();
  }
  ctx.restore();

  // Legend: a swatch, the label and the latest value of each series.
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'left';
  let lx = PAD.left;
  for (const s of series) {
    const last = s.values.length ? s.values[s.values.length - 1] : 0;
    const label = `${s.label} ${format(last)}`;
    ctx.fillStyle = s.color;
    ctx.fillRect(lx, 6, 10, 10);
    ctx.fillStyle = text;
    ctx.fillText(label, lx + 14, 11);
    lx += 14 + ctx.measureText(label).width + 16;
  }
}
