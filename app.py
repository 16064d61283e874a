"""The dashboard's entry point (`streamlit run app.py`): its pages, named in the sidebar as they are titled."""

import streamlit as st

st.navigation(
    [
        st.Page("pages/0_Train.py", title="Train", icon=":material/model_training:", default=True),
        st.Page("pages/1_Samples.py", title="Samples", icon=":material/grid_view:"),
        st.Page("pages/2_Runs.py", title="Runs", icon=":material/list:"),
    ]
).run()
