def render(selection):
    import streamlit as st
    st.write('todo')
