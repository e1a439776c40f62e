"""Write .dvc/plots_offline.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined, so
`dvc plots show` / `dvc plots diff` pages draw with no network (DVC's own page loads them from a CDN).

.dvc/config points plots.html_template at it. Rerun after changing the vl-convert-python pin:
    python scripts/build_plots_template.py
"""

import sys
from importlib.metadata import version
from pathlib import Path

import vl_convert

TEMPLATE = Path(__file__).resolve().parents[1] / ".dvc" / "plots_offline.html"
# DVC's plot templates are written against the Vega-Lite 5 schema.
VEGA_LITE_VERSION = "5.21"


def page() -> str:
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    if "</script" in bundle or "{plot_divs}" in bundle:
        sys.exit("build_plots_template: the bundle cannot be inlined as is; inspect it")
    versions = (
        f"Vega {vl_convert.get_vega_version()}, Vega-Lite {VEGA_LITE_VERSION}, Vega-Embed {vl_convert.get_vega_embed_version()}"
    )
    # DVC fills {refresh_tag} and {plot_divs}; {scripts} (its CDN script tags) is deliberately left out.
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n{refresh_tag}\n<meta charset=\"utf-8\">\n<title>DVC Plot</title>\n"
        f"<!-- {versions}, from vl-convert-python {version('vl-convert-python')}, written by scripts/build_plots_template.py -->\n"
        f"<script>\n{bundle}\n</script>\n"
        "<style>\ntable { border-spacing: 15px; }\n</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )


if __name__ == "__main__":
    TEMPLATE.write_text(page(), encoding="utf-8")
    print(f"build_plots_template: wrote {TEMPLATE} ({TEMPLATE.stat().st_size // 1024} KiB)")
