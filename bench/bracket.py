"""The bench's bisections (smallest heap that still works, least free heap a scan needs): one search,
optionally started from a hint instead of the whole bracket.

A hint is a value measured nearby (the same quantity in the previous bench/results.json, the
first-seen result for the returning rider, the 2,000-record backlog for the 20,000 one). The search
tests the hint, then gallops away from it (1, 2, 4 ... steps) until the outcome flips, and bisects
that bracket. For an outcome that is false below some value and true from it on, the answer is the
one the plain bisection of the whole bracket gives; a good hint needs ~2 trials instead of
log2(bracket / step), a bad one a few more than the plain bisection.
"""


def smallest_passing(works, lo, hi, step=1, hint=None, hi_info=None):
    """Smallest x, a multiple of `step` in (lo, hi], with works(x)[0] true; (x, works(x)[1]).

    works(x) -> (ok, info). hi is taken to pass (never tried; its info is `hi_info`), lo to fail
    (never tried). lo and hi: multiples of step, lo < hi. `hint`: where to start (rounded down to
    the grid; ignored outside (lo, hi)). Raises ValueError for a bad bracket."""
    if lo % step or hi % step or lo >= hi:
        raise ValueError("bracket (%r, %r] is not on a %r grid" % (lo, hi, step))
    a, b = lo // step, hi // step     # invariant: a fails, b passes (grid indices)
    info = hi_info
    if hint is not None:
        h = int(hint) // step
        if a < h < b:
            ok, i = works(h * step)
            if ok:
                b, info = h, i
                d = 1
                while b - d > a:      # gallop down until a trial fails
                    ok, i = works((b - d) * step)
                    if not ok:
                        a = b - d
                        break
                    b, info = b - d, i
                    d *= 2
            else:
                a = h
                d = 1
                while a + d < b:      # gallop up until a trial passes
                    ok, i = works((a + d) * step)
                    if ok:
                        b, info = a + d, i
                        break
                    a += d
                    d *= 2
    while b - a > 1:
        m = (a + b) // 2
        ok, i = works(m * step)
        if ok:
            b, info = m, i
        else:
            a = m
    return b * step, info
