import re


def tokens(text):
    return re.findall(r"[a-z']+", text.lower())
