"""manifest.json never records secrets."""

from harness.results.manifest import package_versions, recorded_environment


def test_secrets_are_left_out():
    env = {"HF_TOKEN": "hf_abc", "HF_HOME": "/data/hf", "RAY_AUTH_TOKEN": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "1", "MY_PASSWORD": "z", "PATH": "/bin",
           "HF_API_KEY": "k"}
    kept = recorded_environment(env)
    assert kept == {"CUDA_VISIBLE_DEVICES": "0,1", "HF_HOME": "/data/hf", "OMP_NUM_THREADS": "1"}


def test_versions_name_the_stack():
    versions = package_versions()
    assert versions["lm_eval"] and versions["torch"] and versions["ray"] and versions["python"]
