-- Argo CD health check for McpServer (mcpgate.dev/v1alpha1).
--
-- Install it as the value of the argocd-cm key
-- resource.customizations.health.mcpgate.dev_McpServer (see doc.go).
--
-- The operator reports status the kstatus way: status.observedGeneration is
-- the metadata.generation it last acted on, and the conditions Ready,
-- Reconciling and Stalled each carry the generation they describe.
--
-- Argo CD runs this with Lua 5.1 and only the base, table and os libraries,
-- so it uses no string functions. obj is the live McpServer; numbers in it are
-- Lua numbers, so generations are compared as numbers.

local hs = {}

-- condition returns the entry of status.conditions with the given type, or nil.
local function condition(conditions, conditionType)
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == conditionType then
      return c
    end
  end
  return nil
end

-- describe formats a condition as "<reason>: <message>", leaving out an empty part.
local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  return message
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

local status = obj.status
local conditions = nil
if type(status) == "table" then
  conditions = status.conditions
end

if type(conditions) ~= "table" or #conditions == 0
    or status.observedGeneration == nil or status.observedGeneration ~= generation then
  -- The operator has not yet acted on the current spec: anything in status is
  -- about an older generation, or there is nothing yet.
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. generation
  end
else
  local stalled = condition(conditions, "Stalled")
  local ready = condition(conditions, "Ready")
  local reconciling = condition(conditions, "Reconciling")

  if stalled ~= nil and stalled.status == "True"
      and (stalled.observedGeneration == nil or stalled.observedGeneration == generation) then
    -- Stuck until someone fixes the spec, a Secret, a conflict or Clerk.
    hs.status = "Degraded"
    hs.message = describe(stalled)
  elseif ready ~= nil and ready.status == "True" and ready.observedGeneration == generation then
    hs.status = "Healthy"
    hs.message = ready.message or ""
  elseif reconciling ~= nil and reconciling.status == "True" then
    hs.status = "Progressing"
    hs.message = reconciling.message
    if hs.message == nil or hs.message == "" then
      hs.message = describe(reconciling)
    end
  elseif ready ~= nil and ready.status == "False" then
    -- Not ready for a reason that fixes itself, such as pods starting or an
    -- Ingress address pending.
    hs.status = "Progressing"
    hs.message = describe(ready)
  else
    hs.status = "Progressing"
    hs.message = "Waiting for the operator"
  end
end

return hs
