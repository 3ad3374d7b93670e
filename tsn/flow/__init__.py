"""Frame and optical-flow extraction the way dense_flow made it for TSN
(docs/caffe_release.md#dense-flow).

`encode` (bound-20 flow <-> 0..255 images), `tvl1` (OpenCV 2.4's Dual TV-L1 in PyTorch,
batched), `compute` (OpenCV 5's TV-L1 and DIS), `warp` (camera-motion compensated "warped"
flow), `batched` (decode into chunks of pairs, flow a batch, write it), `pipeline` (decoder and
writer processes around the device), `extract` (one video -> frame folder, the resumable
drivers, per-rank shares), `settings` (`extract_settings.json`), `cli` (`tsn extract`).
"""
