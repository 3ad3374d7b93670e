"""Frame and optical-flow extraction the way dense_flow made it for TSN (spec 6).

`encode` (bound-20 flow <-> 0..255 images), `compute` (TV-L1 at dense_flow's parameters, DIS),
`warp` (camera-motion compensated "warped" flow), `extract` (one video -> frame folder, and the
resumable process-pool driver), `cli` (`tsn extract`).
"""
