"""The Streamlit side: the process-wide run registry and drawing helpers shared by the pages."""
