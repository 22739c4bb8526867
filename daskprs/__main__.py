from daskprs.cli import main

main()
