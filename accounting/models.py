# Models arrive with the accounting issue; see ../shared/DESIGN.md.
