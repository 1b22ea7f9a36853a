from bnbench.cli import main

main()
