"""The studies shipped with `study`: one `space = Space(...)` per file, listed by `study spaces`.

Installed as a package beside `study`, so `study sweep NAME` finds them in any install. To
change one or write your own, put NAME.py in a `search_spaces/` folder of the working
directory: a file there wins over a shipped one of the same name.
"""
