# Models arrive with the invoicing issue; see ../shared/DESIGN.md.
