"""Small graphs written the way ``torch.onnx.export`` writes them when nothing simplifies the
result: shapes computed at run time from ``Shape``, through ops onnx's shape inference does
not carry values through (Div, Mod, Range, Floor, ConstantOfShape). Each is the pattern of a
model family that ``check`` used to flood with false PL201/PL101 errors (issue 18).
"""

from __future__ import annotations

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'

_INDICES = """
      i0 = Constant<value = int64 {0}>()
      i1 = Constant<value = int64 {1}>()
      i2 = Constant<value = int64 {2}>()
      i3 = Constant<value = int64 {3}>()
      ax0 = Constant<value = int64[1] {0}>()
      m1 = Constant<value = int64[1] {-1}>()
"""

WINDOW_PARTITION = f"""
    {HEADER}
    swin_window (float[1,8,8,16] x) => (float[4,16,16] y) {{
      {_INDICES}
      win = Constant<value = int64 {{4}}>()
      w4 = Constant<value = int64[1] {{4}}>()
      s = Shape(x)
      b = Gather<axis = 0>(s, i0)
      h = Gather<axis = 0>(s, i1)
      w = Gather<axis = 0>(s, i2)
      c = Gather<axis = 0>(s, i3)
      hn = Div(h, win)
      wn = Div(w, win)
      ub = Unsqueeze(b, ax0)
      uh = Unsqueeze(hn, ax0)
      uw = Unsqueeze(wn, ax0)
      uc = Unsqueeze(c, ax0)
      shape = Concat<axis = 0>(ub, uh, w4, uw, w4, uc)
      r = Reshape(x, shape)
      t = Transpose<perm = [0, 1, 3, 2, 4, 5]>(r)
      shape2 = Concat<axis = 0>(m1, w4, w4, uc)
      windows = Reshape(t, shape2)
      act = Relu(windows)
      s2 = Shape(act)
      n = Gather<axis = 0>(s2, i0)
      un = Unsqueeze(n, ax0)
      tokens = Constant<value = int64[1] {{16}}>()
      shape3 = Concat<axis = 0>(un, tokens, uc)
      flat = Reshape(act, shape3)
      y = Relu(flat)
    }}
"""
"""Swin's window partition: ``x.view(B, H // ws, ws, W // ws, ws, C)`` then the windows'
own shape read back for the next view."""

RELATIVE_POSITION_BIAS = f"""
    {HEADER}
    relative_bias (float[1,16,8] x) => (float[1,16,16] y) {{
      {_INDICES}
      ax1 = Constant<value = int64[1] {{1}}>()
      s = Shape(x)
      n = Gather<axis = 0>(s, i1)
      coords = Range(i0, n, i1)
      row = Unsqueeze(coords, ax1)
      col = Unsqueeze(coords, ax0)
      rel = Sub(row, col)
      last = Sub(n, i1)
      index = Add(rel, last)
      bias = Gather<axis = 0>(table, index)
      heads = Transpose<perm = [2, 0, 1]>(bias)
      first = Gather<axis = 0>(heads, i0)
      xt = Transpose<perm = [0, 2, 1]>(x)
      scores = MatMul(x, xt)
      biased = Add(scores, first)
      y = Softmax<axis = -1>(biased)
    }}
"""
"""A relative position bias indexed by ``torch.arange(N)`` in ``forward``; ``table`` is a
weight (added by ``build``), so the bias itself is not a constant ``check`` computes."""

FLATTEN_AND_VIEW = f"""
    {HEADER}
    flatten_view (float[1,8,4,4] x) => (float[1,128] y) {{
      {_INDICES}
      s = Shape(x)
      start = Constant<value = int64[1] {{0}}>()
      stop = Constant<value = int64[1] {{2}}>()
      lead = Slice(s, start, stop)
      shape = Concat<axis = 0>(lead, m1)
      tokens = Reshape(x, shape)
      act = Relu(tokens)
      s2 = Shape(act)
      b = Gather<axis = 0>(s2, i0)
      ub = Unsqueeze(b, ax0)
      shape2 = Concat<axis = 0>(ub, m1)
      y = Reshape(act, shape2)
    }}
"""
"""``x.flatten(2)`` and ``x.view(B, -1)``."""

UPSAMPLE_SIZES = f"""
    {HEADER}
    upsample (float[1,8,8,8] x) => (float[1,8,16,16] y) {{
      s = Shape(x)
      start = Constant<value = int64[1] {{2}}>()
      stop = Constant<value = int64[1] {{4}}>()
      first = Constant<value = int64[1] {{0}}>()
      hw = Slice(s, start, stop)
      nc = Slice(s, first, start)
      f = Cast<to = 1>(hw)
      two = Constant<value = float {{2.0}}>()
      scaled = Mul(f, two)
      floor = Floor(scaled)
      size = Cast<to = 7>(floor)
      sizes = Concat<axis = 0>(nc, size)
      up = Resize<mode = "nearest">(x, , , sizes)
      y = Relu(up)
    }}
"""
"""``F.interpolate(x, scale_factor=2)``: the output size computed as ``floor(h * 2.0)``."""

SHIFTED_WINDOW_MASK = f"""
    {HEADER}
    shift_mask (float[1,16,16] x) => (float[1,256] y) {{
      {_INDICES}
      win = Constant<value = int64 {{4}}>()
      s = Shape(x)
      n = Gather<axis = 0>(s, i1)
      windows = Div(n, win)
      side = Mul(windows, win)
      un = Unsqueeze(side, ax0)
      mshape = Concat<axis = 0>(un, un)
      zeros = ConstantOfShape<value = float[1] {{0.0}}>(mshape)
      where = Constant<value = int64[2, 2] {{0, 0, 1, 1}}>()
      marks = Constant<value = float[2] {{1.0, 1.0}}>()
      marked = ScatterND(zeros, where, marks)
      zero = Constant<value = float {{0.0}}>()
      neg = Constant<value = float {{-100.0}}>()
      same = Equal(marked, zero)
      mask = Where(same, zero, neg)
      masked = Add(x, mask)
      probs = Softmax<axis = -1>(masked)
      sp = Shape(probs)
      rows = Gather<axis = 0>(sp, i1)
      cols = Gather<axis = 0>(sp, i2)
      count = Mul(rows, cols)
      uc = Unsqueeze(count, ax0)
      one = Constant<value = int64[1] {{1}}>()
      back = Concat<axis = 0>(one, uc)
      r = Reshape(probs, back)
      y = Relu(r)
    }}
"""
"""Swin's shifted-window attention mask: ``torch.zeros(shape)`` filled by slices (ScatterND),
then ``masked_fill`` (Equal, Where); the masked scores' shape is read back to flatten them."""

PAD_TO_WINDOW = f"""
    {HEADER}
    pad_window (float[1,6,6,8] x) => (float[1,8,8,8] y) {{
      {_INDICES}
      win = Constant<value = int64 {{4}}>()
      s = Shape(x)
      h = Gather<axis = 0>(s, i1)
      w = Gather<axis = 0>(s, i2)
      hr = Mod(h, win)
      hs = Sub(win, hr)
      ph = Mod(hs, win)
      wr = Mod(w, win)
      ws = Sub(win, wr)
      pw = Mod(ws, win)
      uph = Unsqueeze(ph, ax0)
      upw = Unsqueeze(pw, ax0)
      before = Constant<value = int64[5] {{0, 0, 0, 0, 0}}>()
      after = Constant<value = int64[1] {{0}}>()
      pads = Concat<axis = 0>(before, uph, upw, after)
      padded = Pad(x, pads)
      y = Relu(padded)
    }}
"""
"""Swin pads H and W up to a multiple of the window: ``(ws - H % ws) % ws``."""

RECIPES = {
    "window-partition": WINDOW_PARTITION,
    "relative-position-bias": RELATIVE_POSITION_BIAS,
    "flatten-and-view": FLATTEN_AND_VIEW,
    "upsample-sizes": UPSAMPLE_SIZES,
    "shifted-window-mask": SHIFTED_WINDOW_MASK,
    "pad-to-window": PAD_TO_WINDOW,
}
