# Models arrive with the payroll issue; see ../shared/DESIGN.md.
