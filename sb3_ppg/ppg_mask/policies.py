from sb3_ppg.common.policies import (
    MaskableAuxActorCriticCnnPolicy,
    MaskableAuxActorCriticImpalaCnnPolicy,
    MaskableAuxActorCriticPolicy,
    MaskableMultiInputAuxActorCriticPolicy,
)

MlpPolicy = MaskableAuxActorCriticPolicy
CnnPolicy = MaskableAuxActorCriticCnnPolicy
ImpalaCnnPolicy = MaskableAuxActorCriticImpalaCnnPolicy
MultiInputPolicy = MaskableMultiInputAuxActorCriticPolicy
