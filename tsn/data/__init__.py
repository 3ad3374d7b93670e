"""TSN data side: split files, file lists, snippet sampling, Caffe augmentation, datasets.

Modules (one job each): `errors` (DataError), `splits` (official UCF101/HMDB51 split files),
`video_list` (TSN `path num_frames label` lists), `lists` (lists from splits + frames),
`sampling` (segment/snippet indices), `transforms` (Caffe `DataTransformer` crops/flips/means),
`frames` (JPEG reading with checks), `dataset` (TSNDataset / TSNTestDataset), `synth` (the
synthetic UCF101-format dataset), `prepare` (download + unpack the official archives).
Extraction lives in `tsn.flow`, the loader benchmark in `bench/data.py`. See docs/data.md.
"""
