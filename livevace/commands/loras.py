"""`livevace loras list`: the LoRA files in the LoRA folders, what each is and how strong.

Folders: `$LIVEVACE_LORA_DIR` (else ~/.config/livevace/lora), then Daydream Scope's LoRA
folder, used in place. A slot (`lora_1` …) takes a file's name from here, or any path. Each
file is read as the node would read it: its layout, the base its shapes say it was made for,
its rank, the modules it changes and ‖ΔW‖ (the Frobenius norm of its whole weight change at
scale 1); a file the node would refuse says why in one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("loras", help="list the LoRA files in the LoRA folders",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="each file's layout, base model, rank and size of "
                            "change")
    ls.add_argument("folders", nargs="*", type=Path, metavar="FOLDER",
                    help="folders to list instead of the LoRA folders")
    ls.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from livevace.errors import UserError
    from livevace.models.wan.lora import SUFFIXES, read_lora
    from livevace.store.paths import lora_dirs

    for folder in args.folders or lora_dirs():
        files = sorted(p for p in folder.glob("*") if p.suffix in SUFFIXES) \
            if folder.is_dir() else []
        print(f"{folder}:" + ("" if files else " (no LoRA files)"))
        width = max((len(p.stem) for p in files), default=0)
        for path in files:
            try:
                lora = read_lora(path)
                about = (f"{lora.format}, for {lora.base}, rank {lora.rank}, "
                         f"{len(lora.deltas)} modules, |dW| {lora.norm():.3g}")
            except UserError as e:
                about = f"refused: {str(e).removeprefix(f'{path}: ')}"
            print(f"  {path.stem.ljust(width)}  {about}")
    return 0
