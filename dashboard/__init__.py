"""The Streamlit dashboard: ``page.py`` (served by ``app.py``) wires one module per tab.

Depends on ``evaluation`` and ``generators``; neither of them imports anything from here.
"""

from pathlib import Path

PAGE = Path(__file__).with_name("page.py")  # the page script (tests run it in AppTest)
