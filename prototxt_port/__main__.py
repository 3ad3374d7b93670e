"""Command line: `python -m prototxt_port convert|export ...`.

python -m prototxt_port convert --prototxt P --caffemodel M --out W.pt
python -m prototxt_port export  --prototxt P --weights W.pt --out M.caffemodel
"""

from __future__ import annotations

import argparse
import logging
import sys

from prototxt_port.convert import GENERIC_LAYOUT, convert_caffemodel, export_caffemodel, layouts
from prototxt_port.errors import CaffeFormatError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the conversion, print one clear line on bad input."""
    parser = argparse.ArgumentParser(prog="python -m prototxt_port", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="caffemodel -> .pt (every tensor checked and logged)")
    conv.add_argument("--prototxt", required=True, help="deploy or train_val prototxt of the net")
    conv.add_argument("--caffemodel", required=True)
    conv.add_argument("--out", required=True, help="output .pt")
    conv.add_argument("--layout", default="auto", choices=["auto", GENERIC_LAYOUT, *layouts()],
                      help="auto: the registered architecture layout that matches (tsn registers "
                      "bn_inception), else caffe_net (prototxt layer names)")
    conv.add_argument(
        "--allow-missing",
        nargs="*",
        default=[],
        metavar="LAYER",
        help="layers the caffemodel may lack (e.g. fc-action for ImageNet init models)",
    )
    exp = sub.add_parser("export", help=".pt -> caffemodel")
    exp.add_argument("--prototxt", required=True)
    exp.add_argument("--weights", required=True, help=".pt written by convert")
    exp.add_argument("--out", required=True, help="output .caffemodel")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not log each tensor")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        if args.command == "convert":
            convert_caffemodel(
                args.prototxt, args.caffemodel, args.out, args.layout, args.allow_missing
            )
        else:
            export_caffemodel(args.weights, args.prototxt, args.out)
    except CaffeFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, read-only folder: the old output is left as it was
        print(f"error: cannot write {args.out}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
