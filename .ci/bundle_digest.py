"""Print the sha256 of the bundle `publish()` builds from a model directory, built in this interpreter's environment.

.ci/check-members.sh runs it in the Pulumi-only environment the deploy job installs and in the whole workspace:
the two digests must be equal, or a deploy from CI and one from a laptop would publish different models.
`--without-tokenizer-json` drops that file first, as the production hub model comes without it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from sentiment_shared.model_bundle import pack
from sentiment_shared.model_compact import compact_model_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--without-tokenizer-json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        shutil.copytree(args.model_dir, source, ignore=shutil.ignore_patterns("MODEL_CARD.md"))
        if args.without_tokenizer_json:
            (source / "tokenizer.json").unlink(missing_ok=True)
        print(pack(compact_model_dir(source, Path(tmp) / "compact"), Path(tmp) / "bundle.tar").sha256)  # noqa: T201


if __name__ == "__main__":
    main()
