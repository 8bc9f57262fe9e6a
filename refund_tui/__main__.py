from refund_tui.launch import main

main()
