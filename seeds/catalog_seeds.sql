-- Catalog seed: providers, regions, zones, GPU instance types, zone offers, models.
--
-- Idempotent: every insert is keyed on a natural key with ON CONFLICT, so running
-- it again leaves the same rows. A re-run refreshes descriptive fields (names,
-- hardware specs) but never the fields an operator owns after the first run:
-- is_active flags, activations and prices (the catalog sync keeps prices current).
--
-- Scaleway prices are the public hourly list prices in EUR, excluding VAT; the
-- catalog sync replaces them with what the provider's API reports.

INSERT INTO providers (code, name, description) VALUES
    ('mock', 'Mock', 'Local provider: each instance is a worker agent and a mock engine run as local processes'),
    ('scaleway', 'Scaleway', 'Scaleway Instances with NVIDIA GPUs (fr-par, nl-ams, pl-waw)')
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description;

INSERT INTO regions (provider_id, code, name)
SELECT p.id, v.code, v.name
FROM (VALUES
    ('mock', 'local', 'Local machine'),
    ('scaleway', 'fr-par', 'Paris'),
    ('scaleway', 'nl-ams', 'Amsterdam'),
    ('scaleway', 'pl-waw', 'Warsaw')
) AS v (provider_code, code, name)
JOIN providers p ON p.code = v.provider_code
ON CONFLICT (provider_id, code) DO UPDATE SET name = EXCLUDED.name;

INSERT INTO zones (region_id, code, name)
SELECT r.id, v.code, v.name
FROM (VALUES
    ('mock', 'local', 'local-1', 'Local 1'),
    ('scaleway', 'fr-par', 'fr-par-1', 'Paris 1'),
    ('scaleway', 'fr-par', 'fr-par-2', 'Paris 2'),
    ('scaleway', 'fr-par', 'fr-par-3', 'Paris 3'),
    ('scaleway', 'nl-ams', 'nl-ams-1', 'Amsterdam 1'),
    ('scaleway', 'nl-ams', 'nl-ams-2', 'Amsterdam 2'),
    ('scaleway', 'nl-ams', 'nl-ams-3', 'Amsterdam 3'),
    ('scaleway', 'pl-waw', 'pl-waw-1', 'Warsaw 1'),
    ('scaleway', 'pl-waw', 'pl-waw-2', 'Warsaw 2'),
    ('scaleway', 'pl-waw', 'pl-waw-3', 'Warsaw 3')
) AS v (provider_code, region_code, code, name)
JOIN providers p ON p.code = v.provider_code
JOIN regions r ON r.provider_id = p.id AND r.code = v.region_code
ON CONFLICT (region_id, code) DO UPDATE SET name = EXCLUDED.name;

INSERT INTO instance_types
    (provider_id, code, name, gpu_count, gpu_model, gpu_memory_gb, vcpu_count, ram_gb, bandwidth_bps, cost_per_hour_eur)
SELECT p.id, v.code, v.name, v.gpu_count, v.gpu_model, v.gpu_memory_gb, v.vcpu_count, v.ram_gb, v.bandwidth_bps, v.price
FROM (VALUES
    ('mock', 'MOCK-GPU-S', 'Mock GPU small (1 x 24 GB)', 1, 'MOCK', 24, 2, 8, 1000000000::bigint, 0.100000::numeric),
    ('mock', 'MOCK-GPU-L', 'Mock GPU large (2 x 80 GB)', 2, 'MOCK', 80, 4, 16, 1000000000::bigint, 0.500000::numeric),
    ('scaleway', 'L4-1-24G', 'NVIDIA L4 x1 (24 GB)', 1, 'L4', 24, 8, 48, 2500000000::bigint, 0.750000::numeric),
    ('scaleway', 'L4-2-24G', 'NVIDIA L4 x2 (24 GB each)', 2, 'L4', 24, 16, 96, 5000000000::bigint, 1.500000::numeric),
    ('scaleway', 'L4-4-24G', 'NVIDIA L4 x4 (24 GB each)', 4, 'L4', 24, 32, 192, 10000000000::bigint, 3.000000::numeric),
    ('scaleway', 'L40S-1-48G', 'NVIDIA L40S x1 (48 GB)', 1, 'L40S', 48, 8, 96, 2500000000::bigint, 1.400000::numeric),
    ('scaleway', 'L40S-2-48G', 'NVIDIA L40S x2 (48 GB each)', 2, 'L40S', 48, 16, 192, 5000000000::bigint, 2.800000::numeric),
    ('scaleway', 'H100-1-80G', 'NVIDIA H100 PCIe x1 (80 GB)', 1, 'H100', 80, 24, 240, 10000000000::bigint, 2.730000::numeric),
    ('scaleway', 'H100-2-80G', 'NVIDIA H100 PCIe x2 (80 GB each)', 2, 'H100', 80, 48, 480, 20000000000::bigint, 5.460000::numeric)
) AS v (provider_code, code, name, gpu_count, gpu_model, gpu_memory_gb, vcpu_count, ram_gb, bandwidth_bps, price)
JOIN providers p ON p.code = v.provider_code
ON CONFLICT (provider_id, code) DO UPDATE SET
    name = EXCLUDED.name,
    gpu_count = EXCLUDED.gpu_count,
    gpu_model = EXCLUDED.gpu_model,
    gpu_memory_gb = EXCLUDED.gpu_memory_gb,
    vcpu_count = EXCLUDED.vcpu_count,
    ram_gb = EXCLUDED.ram_gb,
    bandwidth_bps = EXCLUDED.bandwidth_bps;

INSERT INTO instance_type_zones (instance_type_id, zone_id)
SELECT t.id, z.id
FROM (VALUES
    ('mock', 'MOCK-GPU-S', 'local-1'),
    ('mock', 'MOCK-GPU-L', 'local-1'),
    ('scaleway', 'L4-1-24G', 'fr-par-2'),
    ('scaleway', 'L4-1-24G', 'pl-waw-2'),
    ('scaleway', 'L4-2-24G', 'fr-par-2'),
    ('scaleway', 'L4-2-24G', 'pl-waw-2'),
    ('scaleway', 'L4-4-24G', 'fr-par-2'),
    ('scaleway', 'L40S-1-48G', 'fr-par-2'),
    ('scaleway', 'L40S-2-48G', 'fr-par-2'),
    ('scaleway', 'H100-1-80G', 'fr-par-2'),
    ('scaleway', 'H100-1-80G', 'pl-waw-2'),
    ('scaleway', 'H100-2-80G', 'fr-par-2'),
    ('scaleway', 'H100-2-80G', 'pl-waw-2')
) AS v (provider_code, type_code, zone_code)
JOIN providers p ON p.code = v.provider_code
JOIN instance_types t ON t.provider_id = p.id AND t.code = v.type_code
JOIN regions r ON r.provider_id = p.id
JOIN zones z ON z.region_id = r.id AND z.code = v.zone_code
ON CONFLICT (instance_type_id, zone_id) DO NOTHING;

-- Public models (no organization). Token prices are EUR per 1,000 tokens. The context
-- length (tokens) is what the gateway bounds max_tokens and the prompt by: keep it the
-- engine's max model length (the mock engine's --max-model-len is 8192).
INSERT INTO models
    (name, model_id, kind, required_vram_gb, context_length,
     price_per_1k_input_tokens_eur, price_per_1k_output_tokens_eur)
VALUES
    ('Mock echo (dev and tests)', 'inventiv/mock-echo', 'chat', 0, 8192, 0.000100, 0.000200),
    ('Qwen2.5 0.5B Instruct', 'Qwen/Qwen2.5-0.5B-Instruct', 'chat', 4, 32768, 0.000050, 0.000100),
    ('Llama 3.1 8B Instruct', 'meta-llama/Llama-3.1-8B-Instruct', 'chat', 20, 32768, 0.000200, 0.000600),
    ('BGE-M3 embeddings', 'BAAI/bge-m3', 'embedding', 4, 8192, 0.000020, 0.000000)
ON CONFLICT (model_id) WHERE organization_id IS NULL DO UPDATE SET
    name = EXCLUDED.name,
    kind = EXCLUDED.kind,
    required_vram_gb = EXCLUDED.required_vram_gb,
    context_length = EXCLUDED.context_length;
