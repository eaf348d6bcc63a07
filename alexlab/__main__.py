from alexlab.cli import main

main()
