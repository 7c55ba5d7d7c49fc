from sb3_ppg.train import main

main()
