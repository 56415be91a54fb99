"""VAE vs GAN generator lab — `streamlit run app.py`.

Serves the page in ``dashboard/page.py``. Before the server answers its first request it imports the heavy
libraries and draws the grids the page opens on (``dashboard/warmup.py``), so a browser's first page is quick.
"""

import streamlit as st

from dashboard.warmup import lifespan

app = st.App("dashboard/page.py", lifespan=lifespan)
