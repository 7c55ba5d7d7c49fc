from sb3_ppg.zoo import main

main()
