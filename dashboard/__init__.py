"""The Streamlit side: the process-wide run registry and drawing helpers shared by the pages."""

# Plotly imports pandas on the first figure it builds, and takes it from sys.modules as it finds it there: when a
# rerun's script thread built a figure while the thread it replaced was still importing pandas, it found a half-
# imported module ("partially initialized module 'pandas' has no attribute 'Series'", the Train page's drawing
# canvas in CI). An import statement waits for a module another thread is importing; so import it whole here,
# before any page can build a figure.
import pandas  # noqa: F401
