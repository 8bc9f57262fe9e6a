from refund_tui.cli import main

main()
