"""The dashboard server of the installed package: ``genlab app`` runs ``streamlit run`` on this file.

The same server as the repository's ``app.py`` (warm-up, then ``dashboard/page.py``), with the page found
beside the installed ``dashboard`` package, so it starts from any folder. Streamlit adds this file's folder to
``sys.path`` and reads its settings from ``.streamlit/config.toml`` beside it (a copy of the repository's,
which tests/test_package.py keeps identical). Nothing else lives in this folder, so nothing gets shadowed.
"""

from pathlib import Path

import streamlit as st

import dashboard
from dashboard.warmup import lifespan

PAGE = Path(dashboard.__file__).resolve().parent / "page.py"

app = st.App(PAGE, lifespan=lifespan)
