from iot.cli import main

main()
