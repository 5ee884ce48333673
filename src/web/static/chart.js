// Stalk — Celery monitoring server.
// A small time-series line chart on <canvas> (no library): a sliding window of samples, one line per
// series, y axis from 0 to a rounded maximum, time labels along x, a legend. Redraws on push and
// on resize; crisp on high-DPI screens.
//   const c = new StalkChart(canvas, [{name: 'succeeded', color: '#1a7f37'}], {windowSeconds: 300});
//   c.push(Date.now() / 1000, [3.5]);
'use strict';

class StalkChart {
  constructor(canvas, series, options) {
    this.canvas = canvas;
    this.series = series;
    this.window = (options && options.windowSeconds) || 300;
    this.unit = (options && options.unit) || '';
    this.points = [];  // [t, [v0, v1, ...]]
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setSeries(series) { this.series = series; this.draw(); }

  push(t, values) {
    this.points.push([t, values]);
    const oldest = t - this.window;
    while (this.points.length > 2 && this.points[0][0] < oldest) this.points.shift();
    this.draw();
  }

  static niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '11px system-ui, sans-serif';
    const left = 48, right = 10, top = 22, bottom = 22;
    const pw = w - left - right, ph = h - top - bottom;
    const now = this.points.length ? this.points[this.points.length - 1][0] : Date.now() / 1000;
    // The x axis spans what has been collected (at least 30 s), up to the window.
    const first = this.points.length ? this.points[0][0] : now;
    const span = Math.min(this.window, Math.max(30, now - first));
    const t0 = now - span;
    let max = 0;
    for (const [, vs] of this.points) for (const v of vs) if (v > max) max = v;
    max = StalkChart.niceMax(max);
    const x = (t) => left + ((t - t0) / span) * pw;
    const y = (v) => top + ph - (v / max) * ph;

    // grid and y labels
    g.strokeStyle = '#e3e6eb'; g.fillStyle = '#667085'; g.lineWidth = 1;
    g.textAlign = 'right'; g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(left, yy); g.lineTo(left + pw, yy); g.stroke();
      g.fillText(Number(v.toPrecision(3)).toString() + this.unit, left - 6, yy);
    }
    // x labels: about five, on round times
    g.textAlign = 'center'; g.textBaseline = 'top';
    const step = [10, 15, 30, 60, 120, 300, 600].find((s) => span / s <= 6) || 900;
    for (let t = Math.ceil(t0 / step) * step; t <= now; t += step) {
      const d = new Date(t * 1000);
      const label = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0') +
                    (step < 60 ? ':' + String(d.getSeconds()).padStart(2, '0') : '');
      g.fillText(label, x(t), top + ph + 6);
    }
    // lines
    this.series.forEach((s, i) => {
      g.strokeStyle = s.color; g.lineWidth = 1.8; g.beginPath();
      let started = false;
      for (const [t, vs] of this.points) {
        if (t < t0 || vs[i] === undefined || vs[i] === null) continue;
        if (started) g.lineTo(x(t), y(vs[i])); else { g.moveTo(x(t), y(vs[i])); started = true; }
      }
      g.stroke();
    });
    // legend
    g.textAlign = 'left'; g.textBaseline = 'middle';
    let lx = left;
    for (const s of this.series) {
      g.fillStyle = s.color; g.fillRect(lx, 7, 10, 10);
      g.fillStyle = '#1d2430'; g.fillText(s.name, lx + 14, 12);
      lx += g.measureText(s.name).width + 30;
    }
    if (this.points.length < 2) {
      g.fillStyle = '#667085'; g.textAlign = 'center';
      g.fillText('collecting data…', left + pw / 2, top + ph / 2);
    }
  }
}
