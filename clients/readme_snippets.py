"""Write the README's "first ten lines" (TypeScript and Python) into BUILD, so clients/check type-checks and runs
them like the stories: the README's examples stay true. Usage: python readme_snippets.py README.md BUILD"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADING = "### A mobile developer's first ten lines"


def main(readme: Path, build: Path) -> None:
    section = readme.read_text().split(HEADING, 1)[1].split("\n### ", 1)[0]
    blocks = {lang: re.search(rf"```{lang}\n(.*?)```", section, re.S) for lang in ("ts", "python")}
    ts, py = (
        match.group(1) if match else sys.exit(f"no ```{lang} block under {HEADING!r}") for lang, match in blocks.items()
    )
    # The same code, pointed at the live server and at the generated types' file name.
    (build / "readme_first.ts").write_text(
        ts.replace('"./jobops"', '"./schema.js"').replace('"http://127.0.0.1:8000"', "process.argv[2] ?? ''")
    )
    (build / "python" / "readme_first.py").write_text(
        "import sys\n\n" + py.replace('"http://127.0.0.1:8000"', "sys.argv[1]")
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
