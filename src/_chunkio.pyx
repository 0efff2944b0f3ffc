# placeholder: the compiled copier core is being written (issue 3)
