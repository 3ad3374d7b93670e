"""What a modality is: the one table that data, models, solver, layout and reports read.

A modality (paper section 3.1) says how a snippet is read from disk (which frame files, how many
stacked, how normalised), how the network takes it (input channels, dropout, the first conv's
learning rate) and which solver schedule trains it. Adding a modality is one entry in
MODALITIES plus its tests (docs/architecture.md "Adding a modality").

The release has two (docs/caffe_release.md#videodata, #rgb-vs-flow-nets): RGB (1 BGR frame per
snippet, mean [104, 117, 123], dropout 0.8) and optical flow (5 stacked x/y pairs = 10 channels,
mean 128, dropout 0.7, first conv lr_mult 5 / 10). The paper adds warped flow, fed exactly like
flow but extracted into its own folder, and RGB difference, which the release never shipped:
its length, dropout and first-conv boost are our choices, named below.
"""

from __future__ import annotations

from dataclasses import dataclass

# Frame files as dense_flow writes them and VideoData reads them (name_pattern img_%05d.jpg and
# flow_%c_%05d.jpg, 1-based; docs/caffe_release.md#dense-flow). A flow snippet reads x then y.
RGB_FILES = ("img_{:05d}.jpg",)
FLOW_FILES = ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")
RGB_MEAN_BGR = (104.0, 117.0, 123.0)  # train_val mean_value, BGR order, no std
FLOW_MEAN = 128.0  # flow train_val mean_value, every channel


@dataclass(frozen=True)
class Modality:
    """One input stream of TSN."""

    name: str
    channels_per_frame: int  # C: 3 (BGR) or 2 (flow x, y)
    new_length: int  # L: frames stacked per snippet (train_val new_length)
    is_flow: bool  # grey x/y flow images: read as grey, mirroring turns x into 255 - x
    mean: tuple[float, ...]  # subtracted per channel, repeated cyclically (train_val mean_value)
    dropout: float  # dropout before the classifier (train_val dropout_ratio)
    first_conv_lr_boost: float  # the first conv's lr_mult x this: weight 1 -> 5, bias 2 -> 10
    schedule: str  # solver schedule it trains with (tsn.engine.schedule): "rgb" | "flow"
    frames_dir: str  # folder of <root>/<dataset>/ its frames are extracted to (tsn.data.layout)
    extra_frames: int = 0  # frames read beyond new_length per snippet (1: differences)

    @property
    def files(self) -> tuple[str, ...]:
        """File-name patterns of one frame, in channel order (flow: x then y)."""
        return FLOW_FILES if self.is_flow else RGB_FILES

    @property
    def in_channels(self) -> int:
        """Channels of one snippet image fed to the backbone (L * C)."""
        return self.new_length * self.channels_per_frame

    def window(self, new_length: int) -> int:
        """Consecutive frame files one snippet of `new_length` reads."""
        return new_length + self.extra_frames


MODALITIES: dict[str, Modality] = {
    # train_val: new_length 1, 3 BGR channels, dropout_ratio 0.8, conv1 lr_mult 1 / 2
    "rgb": Modality("rgb", 3, 1, False, RGB_MEAN_BGR, 0.8, 1.0, "rgb", "frames"),
    # flow train_val: new_length 5 of (x, y) -> 10 channels, dropout_ratio 0.7, conv1 5 / 10
    "flow": Modality("flow", 2, 5, True, (FLOW_MEAN,), 0.7, 5.0, "flow", "frames"),
    # paper: warped flow is fed exactly like optical flow; `tsn extract --warp` writes it apart
    "warped_flow": Modality("warped_flow", 2, 5, True, (FLOW_MEAN,), 0.7, 5.0, "flow",
                            "warp_frames"),
    # paper only (no released prototxt): 5 stacked differences of consecutive BGR frames (6
    # frames read, no mean: it cancels). Our choices: L = 5 as flow, dropout 0.8 as the other
    # appearance stream, the flow conv1 boost (like flow, a new input space for the ImageNet
    # conv1) and RGB's solver schedule.
    "rgb_diff": Modality("rgb_diff", 3, 5, False, (0.0,), 0.8, 5.0, "rgb", "frames",
                         extra_frames=1),
}


def get_modality(name: str) -> Modality:
    """The Modality called `name`, or a ValueError listing the known ones."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}: choose one of {', '.join(MODALITIES)}")
    return MODALITIES[name]


def new_length_of(modality: str, new_length: int | None = None) -> int:
    """Frames per snippet: `new_length` when given (> 0), else the modality's default."""
    return new_length or get_modality(modality).new_length
