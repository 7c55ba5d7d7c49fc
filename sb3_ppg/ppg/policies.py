from sb3_ppg.common.policies import (
    AuxActorCriticCnnPolicy,
    AuxActorCriticImpalaCnnPolicy,
    AuxActorCriticPolicy,
    MultiInputAuxActorCriticPolicy,
)

MlpPolicy = AuxActorCriticPolicy
CnnPolicy = AuxActorCriticCnnPolicy
ImpalaCnnPolicy = AuxActorCriticImpalaCnnPolicy
MultiInputPolicy = MultiInputAuxActorCriticPolicy
