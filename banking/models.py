# Models arrive with the banking issue; see ../shared/DESIGN.md.
