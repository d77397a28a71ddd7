"""Binary search for the edge of a legal range, landmarks first (validators' limits sit there)."""
from __future__ import annotations

BOUND = 10**18
LANDMARKS = sorted({0, 1, *(10**k for k in range(1, 19)), 10**9 + 7, 2**31 - 1, 2**32 - 1, 2**63 - 1})


def _edge(legal, inside: int, outside: int) -> int:
    """The last legal value going from INSIDE (legal) towards OUTSIDE. Limits usually sit at
    landmarks (0, 1, powers of ten, 2^31 - 1, ...): walk those first, then binary search."""
    sign = 1 if outside > inside else -1
    marks = [m for m in (*LANDMARKS, *(-m for m in LANDMARKS)) if 0 < (m - inside) * sign < (outside - inside) * sign]
    for m in sorted(marks, key=lambda m: (m - inside) * sign):
        if not legal(m):
            outside = m
            break
        inside = m
        if not legal(m + sign):
            return m
    else:
        if legal(outside):
            return outside
    while abs(outside - inside) > 1:
        mid = (inside + outside) // 2
        if legal(mid):
            inside = mid
        else:
            outside = mid
    return inside
