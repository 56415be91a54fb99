"""The Streamlit dashboard: one module per tab, wired together by ``app.py``.

Depends on ``evaluation`` and ``generators``; neither of them imports anything from here.
"""
