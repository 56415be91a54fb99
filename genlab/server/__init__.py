"""The dashboard server of the installed package: ``genlab app`` runs ``streamlit run`` on ``app.py`` here.

Streamlit puts this folder on ``sys.path`` and reads ``.streamlit/config.toml`` beside the script, so the folder
holds only the server and its settings.
"""
