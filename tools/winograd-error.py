#!/usr/bin/env python3
"""Rounding error of Winograd F(m x m, 3 x 3) convolutions in float32, for choosing tile
sizes (src/rust/engine/src/device/cpu_winograd.rs runs F(4x4, 3x3)).

    python3 tools/winograd-error.py [channels=32] [filters=64]   # numpy: the peer venv has it

Builds the Cook-Toom transforms (Aᵀ, G, Bᵀ; the last interpolation point at infinity)
in exact fractions for the listed points, runs one tile of a `channels`-input,
`filters`-output convolution through them in float32 (x ~ N(0, 1), kernel ~ N(0, 0.3)),
and prints the largest error against a float64 direct convolution, relative to the
largest output (the measure the engine's tests bound by 2e-5). numpy only.
"""
import sys
import numpy as np
from fractions import Fraction as F
def cook_toom(m, r, pts):
    # Lavin-style: AT (m x n), G (n x r), BT (n x n), n = m + r - 1, last point = infinity
    n = m + r - 1
    fin = pts  # n-1 finite points
    assert len(fin) == n - 1
    # Vandermonde-based construction (wincnn)
    def poly_from_roots(roots):
        p=[F(1)]
        for a in roots:
            q=[F(0)]*(len(p)+1)
            for i,c in enumerate(p):
                q[i]+=c*(-a); q[i+1]+=c
            p=q
        return p
    # A^T: n x m -> rows: points^j, last row for infinity
    AT=[[F(0)]*n for _ in range(m)]
    for i,a in enumerate(fin):
        for j in range(m): AT[j][i]=a**j
    AT[m-1][n-1]=F(1)
    # G: n x r
    G=[[F(0)]*r for _ in range(n)]
    for i,a in enumerate(fin):
        others=[b for b in fin if b!=a]
        denom=F(1)
        for b in others: denom*= (a-b)
        for j in range(r): G[i][j]=a**j/denom
    G[n-1][r-1]=F(1)
    # B^T: n x n
    M=poly_from_roots(fin)  # degree n-1 poly coefficients
    BT=[[F(0)]*n for _ in range(n)]
    for i,a in enumerate(fin):
        others=[b for b in fin if b!=a]
        p=poly_from_roots(others)
        for j in range(n): BT[i][j]=p[j] if j < len(p) else F(0)
    for j in range(n): BT[n-1][j]=M[j]
    return (np.array(AT,dtype=np.float64),np.array(G,dtype=np.float64),np.array(BT,dtype=np.float64))

def test(m, pts, C=32, Fo=64, trials=3):
    r=3; n=m+r-1
    AT,G,BT=cook_toom(m,r,[F(p) for p in pts])
    rng=np.random.default_rng(0)
    errs=[]
    for t in range(trials):
        d=rng.standard_normal((C,n,n)).astype(np.float32)
        g=(rng.standard_normal((Fo,C,3,3))*0.3).astype(np.float32)
        # exact direct in float64
        ref=np.zeros((Fo,m,m))
        for y in range(m):
            for x in range(m):
                ref[:,y,x]=np.einsum('fcij,cij->f', g.astype(np.float64), d[:,y:y+3,x:x+3].astype(np.float64))
        f32=np.float32
        U=np.einsum('ai,fcij,bj->fcab', G.astype(f32), g, G.astype(f32)).astype(f32)
        V=np.einsum('ai,cij,bj->cab', BT.astype(f32), d, BT.astype(f32)).astype(f32)
        Mm=np.einsum('fcab,cab->fab', U, V).astype(f32)
        Y=np.einsum('ia,fab,jb->fij', AT.astype(f32), Mm, AT.astype(f32)).astype(f32)
        errs.append(np.abs(Y-ref).max()/np.abs(ref).max())
    return max(errs)
if __name__ == "__main__":
    C = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    Fo = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    for m, pts in [(2, [0, 1, -1]), (4, [0, 1, -1, 2, -2]), (5, [0, 1, -1, 2, -2, 0.5]),
                   (6, [0, 1, -1, 2, -2, 0.5, -0.5])]:
        print("F(%dx%d, 3x3), %d channels: %.2e" % (m, m, C, test(m, pts, C, Fo)))
