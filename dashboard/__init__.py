"""The ops dashboard: a Streamlit app that reads MongoDB and Redis (``voxflow dashboard``)."""
