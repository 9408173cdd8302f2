/// The beta schedules MaskDM's configs name (`linear` for CelebA 64 and Church, `cosine` for
/// CelebA-HQ, VGGFace2 and the transfer runs). Encodes as its name.
public enum ScheduleKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Linearly spaced betas (``NoiseSchedule/linear(timesteps:)``).
    case linear
    /// Nichol & Dhariwal's cosine schedule (``NoiseSchedule/cosine(timesteps:s:)``).
    case cosine

    /// The schedule with `timesteps` steps.
    public func schedule(timesteps: Int = 1000) -> NoiseSchedule {
        switch self {
        case .linear: .linear(timesteps: timesteps)
        case .cosine: .cosine(timesteps: timesteps)
        }
    }

    /// Parses a config or command-line name (case-insensitive).
    /// - Throws: ``ScheduleError/unknownSchedule(_:)``.
    public init(name: String) throws {
        guard let k = ScheduleKind(rawValue: name.lowercased()) else { throw ScheduleError.unknownSchedule(name) }
        self = k
    }

    public var description: String { rawValue }
}

/// A sampler and its settings, as a value (configs, run folders, the command line).
///
/// ```swift
/// let kind = try SamplerKind(name: "dpm", steps: 25)
/// let sampler = try kind.sampler(schedule: .linear())    // DPMSolverPlusPlus2M, 25 calls
/// ```
public enum SamplerKind: Codable, Sendable, Equatable, CustomStringConvertible {
    /// DDIM on the reference's uniform spacing (MaskDM's reported results: 250 steps, eta 1).
    case ddim(steps: Int, eta: Double)
    /// Ancestral DDPM over all T steps.
    case ddpm
    /// DPM-Solver++(2M) on quadratic spacing.
    case dpmSolver(steps: Int)

    /// Parses `ddim`, `ddpm` or `dpm` (alias `dpm++`); `steps` defaults to 250 for DDIM and 25
    /// for DPM-Solver++, `eta` to 1.
    /// - Throws: ``ScheduleError/unknownSampler(_:)`` for another name;
    ///   ``ScheduleError/unusableSampler(_:)`` for a step count below 1 or a DDIM eta outside [0, 1].
    public init(name: String, steps: Int? = nil, eta: Double? = nil) throws {
        switch name.lowercased() {
        case "ddim": self = .ddim(steps: steps ?? 250, eta: eta ?? 1)
        case "ddpm": self = .ddpm
        case "dpm", "dpm++", "dpmsolver": self = .dpmSolver(steps: steps ?? 25)
        default: throw ScheduleError.unknownSampler(name)
        }
        if let problem = problem(trainingSteps: nil) { throw ScheduleError.unusableSampler(problem) }
    }

    /// Throws ``ScheduleError/unusableSampler(_:)`` unless this sampler can run on a schedule of
    /// `trainingSteps` steps: a DDIM or DPM-Solver++ step count from 1 to `trainingSteps` (each
    /// step lands on a distinct training step), a DDIM eta in [0, 1].
    public func validate(trainingSteps: Int) throws {
        if let problem = problem(trainingSteps: trainingSteps) { throw ScheduleError.unusableSampler(problem) }
    }

    /// What makes this sampler unusable on a schedule of `trainingSteps` steps (nil: on any
    /// schedule, checking only what the settings alone can get wrong), or nil when it can run.
    private func problem(trainingSteps: Int?) -> String? {
        let most = trainingSteps.map { Swift.max($0, 1) } ?? Int.max
        let range = trainingSteps.map { "from 1 to \($0)" } ?? ">= 1"
        let on = trainingSteps.map { " on a schedule of \($0) steps" } ?? ""
        switch self {
        case .ddim(let steps, let eta):
            guard (1...most).contains(steps), (0...1).contains(eta) else {
                return "DDIM with \(steps) steps and eta \(eta)\(on) (steps must be \(range), eta in [0, 1])"
            }
        case .ddpm: break
        case .dpmSolver(let steps):
            guard (1...most).contains(steps) else { return "DPM-Solver++ with \(steps) steps\(on) (steps must be \(range))" }
        }
        return nil
    }

    /// The sampler for a model trained with `schedule`.
    /// - Throws: ``ScheduleError/unusableSampler(_:)`` when it cannot run on `schedule`
    ///   (``validate(trainingSteps:)``), e.g. DDIM with 5000 steps on 1000 training steps.
    public func sampler(schedule: NoiseSchedule) throws -> any DiffusionSampler {
        try validate(trainingSteps: schedule.timesteps)
        return switch self {
        case .ddim(let steps, let eta): DDIMSampler(schedule: schedule, steps: steps, eta: eta)
        case .ddpm: DDPMSampler(schedule: schedule)
        case .dpmSolver(let steps): DPMSolverPlusPlus2M(schedule: schedule, steps: steps)
        }
    }

    /// Network evaluations per image.
    public func evaluations(trainingSteps: Int = 1000) -> Int {
        switch self {
        case .ddim(let steps, _): steps
        case .ddpm: trainingSteps
        case .dpmSolver(let steps): steps
        }
    }

    public var description: String {
        switch self {
        case .ddim(let steps, let eta): "DDIM (\(steps) steps, eta \(eta))"
        case .ddpm: "DDPM (ancestral, all steps)"
        case .dpmSolver(let steps): "DPM-Solver++(2M) (\(steps) steps)"
        }
    }
}
