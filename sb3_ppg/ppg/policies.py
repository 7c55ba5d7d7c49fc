from sb3_ppg.common.policies import (
    AuxActorCriticCnnPolicy,
    AuxActorCriticImpalaCnnPolicy,
    AuxActorCriticMinAtarCnnPolicy,
    AuxActorCriticPolicy,
    MultiInputAuxActorCriticPolicy,
)

MlpPolicy = AuxActorCriticPolicy
CnnPolicy = AuxActorCriticCnnPolicy
ImpalaCnnPolicy = AuxActorCriticImpalaCnnPolicy
MinAtarCnnPolicy = AuxActorCriticMinAtarCnnPolicy
MultiInputPolicy = MultiInputAuxActorCriticPolicy
