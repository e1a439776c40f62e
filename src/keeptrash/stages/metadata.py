"""Stage 1: parse AVA metadata (votes, tags, challenges, official split) into one table."""

from pathlib import Path

from keeptrash import paths
from keeptrash.metadata.ava import build_metadata, metadata_summary
from keeptrash.errors import exits_cleanly
from keeptrash.io import write_json, write_table
from keeptrash.params import load_params


@exits_cleanly
def main() -> None:
    params = load_params().metadata
    table = build_metadata(
        [Path(path) for path in params.votes_files],
        Path(params.tags_file),
        Path(params.challenges_file),
        Path(params.official_train_list),
        Path(params.official_test_list),
    )
    write_table(paths.METADATA, table)
    write_json(paths.METADATA_METRICS, metadata_summary(table))
    print(f"metadata: {len(table)} AVA images -> {paths.METADATA}")


if __name__ == "__main__":
    main()
